"""Language ID, preprocessing, fast classifiers, calibration, training and evaluation.

Pure code: nothing here starts or needs an event loop, so it can be used from a notebook,
a CLI command or a worker thread alike.
"""
