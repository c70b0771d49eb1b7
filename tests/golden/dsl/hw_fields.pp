# each field out of range or in a unit that is not one
model gpt { layers = 4 }
hardware h100 {
    efficiency = 1.5
    memory = 80Gb
    node_bandwidth = 0GB
    devices_per_node = 0
    bf16_tflops = -3
    network_latency = fast
}
