"""Stage 2, training: MLM + NSP pretraining and float fine-tuning of the Keras models."""
