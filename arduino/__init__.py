"""The Arduino library's C++ sources (src/) and templates (templates/). Not imported from the
checkout; the wheel installs this folder as the package `tflm_embbert_arduino` (pyproject.toml
package-dir) so `export_tflite` finds them with importlib.resources."""
