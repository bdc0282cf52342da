"""Golden numbers: frozen reference outputs of sureal, choix, scipy and bjontegaard.

See ``make_golden.py`` for how the JSON files were made and ``../test_golden.py`` for the test.
"""
