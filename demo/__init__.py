"""`make demo`: a whole lot on one machine (see __main__)."""
