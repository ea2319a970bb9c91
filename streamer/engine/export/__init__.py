"""Build the ONNX model directory from Whisper weights, without PyTorch."""

# bumped whenever the built files change, so that older builds are rebuilt on first use
# (2: int8 weights in 7 bits, see streamer/engine/export/quantize.py; 3: weights in
# <file>.onnx_data, aligned, so ONNX Runtime maps them, see export/external.py; 4: the encoder's
# attention in chunks of queries, see Layers.attention_in_chunks; 5: the decoder's optional
# logits_from input, see decoder_graph.select_logit_rows)
RECIPE = 5
