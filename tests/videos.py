"""Small test sources made with PyAV: scene content from vsr.media.synth, any size, pixel
format or timing (variable frame rate), and files cut short."""

from fractions import Fraction

import av
import numpy as np

from vsr.media.synth import render_frames


def scene_frames(width=320, height=180, scenes=3, n=15, tail=0, seed=0):
    """`scenes` scenes of `n` frames (plus a last scene of `tail` frames), resized by OpenCV."""
    import cv2

    frames = [f for _, f in render_frames(320, 180, 30, scenes + 1, n / 30, seed)]
    frames = frames[: scenes * n + tail]
    return [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]


def encode(path, frames, fps=30, pix_fmt="yuv420p", steps_ms=None, faststart=True):
    """Encode RGB frames as H.264 mp4; `steps_ms` (a list, cycled) gives variable frame timing."""
    opts = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=opts) as c:
        st = c.add_stream("libx264", rate=fps)
        st.height, st.width = frames[0].shape[:2]
        st.pix_fmt = pix_fmt
        if steps_ms:
            st.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if steps_ms:
                f.pts, f.time_base = t, Fraction(1, 1000)
                t += steps_ms[i % len(steps_ms)]
            for p in st.encode(f):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    return path


def cut_in_half(src, out):
    data = src.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out
