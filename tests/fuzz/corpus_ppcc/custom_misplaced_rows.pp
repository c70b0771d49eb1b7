# Rows outside an order block; an order with a value; settings inside one.
devices = 2
schedule custom
cost {
    device 0: F0.0 B0.0
}
order = 3
order {
    devices = 2
}
