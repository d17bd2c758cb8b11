"""Stage 3, quantize: QAT (tfmot), the rewrites before conversion, the full-int8 .tflite."""
