"""tflm_embbert: EmbBERT from text to an int8 model under TensorFlow Lite Micro.

One subpackage per stage of the pipeline, each importing only the stages before it
(tests/test_layering.py checks it):

- common:   files written atomically, where the repository keeps what it ships
- data:     tokenizer, task datasets and the user's own files, text -> id arrays, task metrics
- training: pretraining (MLM + NSP) and float fine-tuning of the Keras models (keras_models/)
- quantize: quantization-aware training (tfmot), prepare for conversion, full-int8 .tflite
- graph:    reading and rewriting .tflite flatbuffers (schema only, no TensorFlow): the int8
            check, memory-lean graphs, the offline memory plan, length buckets, MACs
- tflm:     running the int8 model under the TFLM runtime: outputs, arena, accuracy, memory report

`pipeline` runs the stages in order for one task; `train` is its command line. The Arduino library
is written by the `export` package, above all of these.
"""
