"""The live path: capture, the VAD gate, the ring buffer, streaming decodes, the commit
policy and the threads that run them.

It builds on the engine and knows nothing of outputs or benchmarks.
"""
