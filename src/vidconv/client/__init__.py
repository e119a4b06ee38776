"""The command-line client (``vidconv convert|signup|login|tasks|download|delete|logout``).

It talks to a vidconv server over HTTP only (httpx, httpx-sse; rich for the progress bars;
platformdirs for where the token is kept), and imports nothing of the server's: it is the
``client`` extra of the distribution, which the server images do not install.
"""
