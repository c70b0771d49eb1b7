# units: B, KB, MB, GB, KiB, MiB, GiB
memory { activation = 2GB limit = 80TB }
