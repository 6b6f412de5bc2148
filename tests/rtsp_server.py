"""A real local RTSP server for the camera tests (GStreamer's gst-rtsp-server through python3-gi).

Run by the SYSTEM python (``/usr/bin/python3``), which has the Debian GStreamer
bindings; the project's venv does not::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 [--file clip.mp4] [--path /cam]

Serves ``rtsp://127.0.0.1:PORT/cam`` as H.264 over RTP.  With ``--file`` it
serves that file (``filesrc ! decodebin``; the stream ends with the file); by
default it serves an endless live test pattern (``videotestsrc is-live=true``
with a moving ball), which is what fault tests need: a stream that only stops
when the server is killed (a drop) or SIGSTOPped (a stall).  Prints ``READY``
once it listens.
"""
from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ENCODE = "videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96"


def launch_line(file: str | None, width: int, height: int, fps: int) -> str:
    if file:
        return f"( filesrc location={file} ! decodebin ! {ENCODE} )"
    caps = f"video/x-raw,width={width},height={height},framerate={fps}/1"
    return f"( videotestsrc is-live=true pattern=ball ! {caps} ! {ENCODE} )"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--file", default=None, help="serve this video file instead of a live test pattern")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--fps", type=int, default=10)
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.file, args.width, args.height, args.fps))
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
