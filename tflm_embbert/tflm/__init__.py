"""Stage 5, tflm: the int8 model run under the TFLM runtime (outputs, arena, accuracy, memory)."""
