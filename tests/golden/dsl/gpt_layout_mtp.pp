# Megatron's layout string: an MTP layer (m) is Megatron's, not ppcc's (docs/megatron.md)
devices = 4
model gpt { layers = 7 layout = "Et*3|(tt|)*2,m|L" }
