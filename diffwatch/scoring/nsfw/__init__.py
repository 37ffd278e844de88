"""NSFW flags from NudeNet 320n: the ONNX reader, ops, the torch runner and the detector."""
