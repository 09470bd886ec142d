print("glmc")
