"""Resumable uploads: the tus 1.0 protocol (https://tus.io/protocols/resumable-upload) at
``/api/uploads/``, with its state in the database so that any API replica takes the next chunk.

- ``protocol``: the headers, metadata and checksums of the protocol, and the request body;
- ``rows``: the ``uploads`` table, and the lease that lets one request at a time write;
- ``sinks``: where a chunk's bytes go: a file in the data dir, or an S3 multipart upload;
- ``expiry``: the sweep that removes abandoned uploads from storage.
"""
