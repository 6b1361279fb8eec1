"""showcase: personalized showcases (photos + text) that explain recommendations."""
__version__ = "0.1.0"
