#!/usr/bin/python3
"""A test RTSP server on 127.0.0.1 (GStreamer's gst-rtsp-server): serves an H.264 MP4 clip at
rtsp://127.0.0.1:PORT/PATH, in real time, without re-encoding. Each client gets its own pipeline
from the clip's start; make the clip long (ffmpeg -stream_loop N -c copy) for long runs.

    /usr/bin/python3 scripts/rtsp-server.py PORT PATH CLIP.mp4

Prints "ready rtsp://127.0.0.1:PORT/PATH" on standard output once listening; runs until killed.
Needs Debian's gir1.2-gst-rtsp-server-1.0, python3-gi, python3-gst-1.0, gstreamer1.0-plugins-good
(qtdemux, rtph264pay) and gstreamer1.0-plugins-bad (h264parse).
"""
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    port, path, clip = sys.argv[1], sys.argv[2].strip("/"), os.path.abspath(sys.argv[3])
    if not os.path.isfile(clip):
        print(f"rtsp-server: {clip}: no such file", file=sys.stderr)
        return 1
    Gst.init(None)
    for element in ("qtdemux", "h264parse", "rtph264pay"):
        if Gst.ElementFactory.find(element) is None:
            print(f"rtsp-server: GStreamer element {element} is missing", file=sys.stderr)
            return 1
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    quoted = clip.replace('"', '\\"')
    factory.set_launch(f'( filesrc location="{quoted}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )')
    factory.set_shared(False)
    server.get_mount_points().add_factory(f"/{path}", factory)
    if server.attach(None) == 0:
        print(f"rtsp-server: cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    print(f"ready rtsp://127.0.0.1:{port}/{path}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
