"""Alignment scorecards for leaders: HTML (self-contained), PDF and Markdown.

data.py reads the warehouse, language.py turns numbers into sentences, charts.py draws
offline SVG (matplotlib), render.py writes the files. No network, ever: CSS is inline and
charts are inline SVG.
"""
