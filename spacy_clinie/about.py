__title__ = "spacy-clinie"
__version__ = "0.1.0"
