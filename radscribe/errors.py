"""One error family for everything a user can get wrong.

The CLI turns any ``RadscribeInputError`` into a single ``error: ...`` line on stderr and exit
code 2. Inner code raises it only at the boundary (reading files, validating configs); past the
boundary, objects are trusted.
"""


class RadscribeInputError(Exception):
    """Bad input a person can act on: the message says what is wrong and with which file."""


class UnreadableFileError(RadscribeInputError):
    """The file is missing, empty, truncated or not an image radscribe can read."""


class GeometryError(RadscribeInputError):
    """A series or volume whose geometry is inconsistent (spacing, orientation, missing slices)."""


class ImageTooLargeError(RadscribeInputError):
    """The decoded image would exceed the size cap."""


class ConfigError(RadscribeInputError):
    """A training/model config that does not validate, or weights that do not match it."""


class OutputExistsError(RadscribeInputError):
    """The output path exists and --overwrite was not given."""


class NoPixelDataError(UnreadableFileError):
    """A DICOM object that holds no image (a structured report, a presentation state, ...)."""


class InvalidVoxelsError(RadscribeInputError):
    """Decoded voxels that cannot be analysed (NaN or infinite values)."""


class UnknownFormatError(UnreadableFileError):
    """A file whose format radscribe does not read."""


class SeriesNotFoundError(RadscribeInputError):
    """An explicitly requested series is not in the folder."""
