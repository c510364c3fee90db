"""Human-in-the-loop review (seed 000's third contribution).

``clinie review MODEL DATA`` serves a local web app in which an expert looks
at each instance (a sentence or window of the DATA docs), per tagger task:
the alignment of predicted and gold tags and the encoder's attention, then
accepts the prediction, takes the gold tags, annotates tokens or uploads
labels. Every decision goes straight to a SQLite store
(:mod:`spacy_clinie.review.store`); ``clinie refine`` retrains on it with a
forgetting guard (:mod:`spacy_clinie.review.refine`).

Importing this package is light: Flask, Plotly and torch load in the
submodules that need them.
"""
