"""``python -m report``: per-namespace and per-region avoided CO2 and savings over a time range,
read from Prometheus and written as CSV, JSON and a self-contained HTML page.

``prometheus`` is the only I/O (the HTTP API); ``figures`` turns query results into rows and cumulative
series (pure); ``render`` writes the files; ``cli`` parses arguments and ties them together.
"""
