"""Stage 2, convert: a Keras model -> a full-int8 TFLite flatbuffer, checked tensor by tensor."""

from toolchain.convert.convert import check_full_int8, convert_file, convert_model, evaluate, find_non_int8

__all__ = ["check_full_int8", "convert_file", "convert_model", "evaluate", "find_non_int8"]
