"""The model engine: Whisper on ONNX Runtime, from audio samples to timed tokens and words.

It knows nothing of live capture, outputs or benchmarks.
"""
