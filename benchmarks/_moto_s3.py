"""moto's S3 application alone, on a WSGI server that keeps connections alive.

Run by ``_harness.s3_server("moto-s3")`` as ``python _moto_s3.py PORT``; listens on
127.0.0.1 only. ``python -m moto.server`` (what the test suite runs, ``--s3 moto-server``
in the benchmarks) costs the benchmarks' shared cores about twice the CPU per request:
its werkzeug development server closes every connection (a TCP handshake per request, on
the server and on the client), and its dispatcher matches every request against every
moto service's URL patterns before S3 sees it. Here the S3 application answers directly,
served by waitress (benchmarks only: ``benchmarks/requirements.txt``), whose connections
stay open as S3's do. Same moto S3 code: only the transport is cheaper, with two
differences the benchmarks never meet: waitress drops request headers whose names hold an
underscore (S3 user metadata such as ``x-amz-meta-a_b``), which moto's own server keeps,
and user metadata keys come back capitalised (``Aggregator-Format``, lower-case from moto's
server and S3; the library reads them in any case).
"""

from __future__ import annotations

import sys

from moto.moto_server.werkzeug_app import create_backend_app
from waitress import serve

#: Worker threads: the application holds the GIL, so more only queue on it.
THREADS = 8
#: Open connections at most (waitress's default, 100, is near the floor row's 64 plus the
#: seeding client's idle ones; past it waitress quietly stops accepting).
CONNECTION_LIMIT = 256


def main() -> None:
    port = int(sys.argv[1])
    serve(
        create_backend_app("s3"),
        host="127.0.0.1",
        port=port,
        threads=THREADS,
        connection_limit=CONNECTION_LIMIT,
        _quiet=True,
    )


if __name__ == "__main__":
    main()
