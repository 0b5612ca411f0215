# vLLM generates this file (setuptools-scm). The double's version says what it is.
__version__ = "0.0.0+double.00080ee1"
__version_tuple__ = (0, 0, 0, "double", "00080ee1")
