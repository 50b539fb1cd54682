"""Built-in data sets (bundled with installed packages; nothing is downloaded)."""

from .digits import DigitsData, digits_loaders, load_digits_data

__all__ = ["DigitsData", "digits_loaders", "load_digits_data"]
