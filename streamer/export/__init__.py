"""Build the ONNX model directory from Whisper weights, without PyTorch."""
