devices = 2
microbatches = auto
microbatches.max = 8
schedule zb-h1
hardware a100 { memory = 40GB  efficiency = 0.4  devices_per_node = 1  network_bandwidth = 12.5GB }
model gpt { layers = 4 hidden = 256 heads = 4 seq = 128 vocab = 512 tie = 0 batch = 16 optimizer = adamw lr = 3e-4 precision = bf16 balance = [1, 3] }
