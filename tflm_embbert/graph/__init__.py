"""Stage 4, graph: .tflite flatbuffers read and rewritten with the schema only (no TensorFlow)."""
