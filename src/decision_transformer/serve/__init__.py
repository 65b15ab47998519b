"""`dt serve`: a local web page over the toolkit's models (catalog: what it plays; app: the page)."""
