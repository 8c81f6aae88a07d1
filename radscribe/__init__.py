"""radscribe: find abnormalities in medical images and describe them in clinical language.

The package follows the flow of a study: io -> preprocess -> models -> findings -> report ->
evaluate -> serve. A lower step never imports a higher one.
"""

__version__ = "0.1.0"
