"""Sound for video outputs: copying (or transcoding) another file's audio track into
the container a :class:`~reanimate.io.FrameWriter` encodes, interleaved with the video."""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path

import av

from reanimate.errors import InputError
from reanimate.io.reading import ffmpeg_reason, open_media

logger = logging.getLogger(__name__)

__all__ = ["AudioMuxer", "check_audio_range", "has_audio"]


def check_audio_range(audio_range) -> tuple[Fraction, Fraction] | None:
    """``(start, end)`` seconds as Fractions; ValueError unless ``0 <= start < end``."""
    if audio_range is None:
        return None
    try:
        start, end = (float(t) for t in audio_range)
    except (TypeError, ValueError):
        raise ValueError(f"audio_range must be (start, end) in seconds, got {audio_range!r}") from None
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        raise ValueError(f"audio_range must satisfy 0 <= start < end, got {audio_range!r}")
    return Fraction(start), Fraction(end)


def has_audio(path: Path) -> bool:
    """Whether ``path`` (an existing media file) has an audio track; folders have none.

    Raises :class:`InputError` if ``path`` is missing or cannot be opened by FFmpeg.
    """
    if not path.exists():
        raise InputError(path, "audio source not found")
    if path.is_dir():
        logger.info("%s: a folder has no audio; the video will have none", path)
        return False
    source = open_media(path, "audio")
    try:
        found = bool(source.streams.audio)
    finally:
        source.close()
    if not found:
        logger.info("%s: no audio track; the video will have none", path)
    return found


class AudioMuxer:
    """Adds the first audio track of another file to an output container.

    Packets are pulled from the source lazily: :meth:`feed_until` muxes the audio that
    starts before a given time, so audio is interleaved with the video as it is encoded
    and memory stays bounded. Packets are copied unchanged when the output container
    accepts the codec, else decoded and re-encoded (AAC, or Opus for WebM). With an
    ``audio_range``, only packets starting inside it are used, shifted by its start.
    """

    def __init__(
        self,
        source: av.container.InputContainer,
        in_stream: av.audio.stream.AudioStream,
        output: av.container.OutputContainer,
        out_stream: av.audio.stream.AudioStream,
        transcode: bool,
        path: Path,
        audio_range: tuple[Fraction, Fraction] | None = None,
    ):
        self._source = source
        self._in_stream = in_stream
        self._output = output
        self._out_stream = out_stream
        self._transcode = transcode
        self._path = path
        self._cut = audio_range is not None
        self._start, end = audio_range if self._cut else (Fraction(0), None)
        self._limit = None if end is None else end - self._start
        if self._start > 0:
            self._seek_before(self._start)
        self._packets = source.demux(in_stream)
        self._pending = self._next_packet()
        self._next_pts: int | None = None

    @classmethod
    def attach(
        cls, path: Path, output: av.container.OutputContainer, audio_range: tuple[Fraction, Fraction] | None = None
    ) -> AudioMuxer | None:
        """Add an audio stream for ``path``'s audio to ``output``; None if it has none."""
        source = open_media(path, "audio")
        if not source.streams.audio:
            source.close()
            return None
        in_stream = source.streams.audio[0]
        codec = in_stream.codec_context.name
        if codec in output.supported_codecs:
            out_stream = output.add_stream_from_template(in_stream)
            logger.info("%s: copying %s audio", path, codec)
            return cls(source, in_stream, output, out_stream, transcode=False, path=path, audio_range=audio_range)
        target = "aac" if "aac" in output.supported_codecs else "libopus"
        rate = 48000 if target == "libopus" else in_stream.codec_context.sample_rate
        out_stream = output.add_stream(target, rate=rate)
        out_stream.layout = "stereo" if in_stream.channels > 1 else "mono"
        logger.info("%s: transcoding %s audio to %s", path, codec, target)
        return cls(source, in_stream, output, out_stream, transcode=True, path=path, audio_range=audio_range)

    def feed_until(self, seconds: float | Fraction) -> None:
        """Mux every source packet that starts before ``seconds`` (output time)."""
        if self._limit is not None:
            seconds = min(seconds, self._limit)
        while self._pending is not None and _packet_start(self._pending) - self._start < seconds:
            self._mux(self._pending)
            self._pending = self._next_packet()

    def finish(self, end_seconds: float | Fraction) -> None:
        """Mux the audio that starts before ``end_seconds``, flush the encoder, stop."""
        self.feed_until(end_seconds)
        self._pending = None
        if self._transcode:
            self._output.mux(self._out_stream.encode(None))

    def close(self) -> None:
        self._source.close()

    def _next_packet(self) -> av.Packet | None:
        try:
            for packet in self._packets:
                if packet.size and (packet.pts is not None or packet.dts is not None):
                    if self._cut and _packet_start(packet) < self._start:
                        continue
                    return packet
        except av.FFmpegError as exc:
            logger.warning("%s: audio cut short by unreadable data (%s)", self._path, ffmpeg_reason(exc))
        return None

    def _mux(self, packet: av.Packet) -> None:
        if not self._transcode:
            if self._start:
                shift = round(self._start / packet.time_base)
                if packet.pts is not None:
                    packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
            packet.stream = self._out_stream
            self._output.mux(packet)
            return
        try:
            frames = self._in_stream.codec_context.decode(packet)
        except av.FFmpegError as exc:
            logger.warning("%s: skipping undecodable audio (%s)", self._path, ffmpeg_reason(exc))
            return
        for frame in frames:
            self._stamp(frame)
            self._output.mux(self._out_stream.encode(frame))

    def _seek_before(self, seconds: Fraction) -> None:
        """Jump near ``seconds`` (a second early, packets before it are skipped anyway)
        instead of demuxing everything before it."""
        target = max(Fraction(0), seconds - 1)
        if not self._in_stream.time_base:
            return
        try:
            self._source.seek(int(target / self._in_stream.time_base), stream=self._in_stream, backward=True)
        except av.FFmpegError as exc:  # not seekable: demux from where it is, the start
            logger.debug("%s: cannot seek the audio (%s)", self._path, ffmpeg_reason(exc))

    def _stamp(self, frame: av.AudioFrame) -> None:
        """Give decoded audio continuous timestamps in samples (starting where it starts)."""
        if self._next_pts is None:
            start = frame.time - float(self._start) if frame.time is not None else 0.0
            self._next_pts = max(0, round(start * frame.sample_rate))
        frame.pts = self._next_pts
        frame.time_base = Fraction(1, frame.sample_rate)
        self._next_pts += frame.samples


def _packet_start(packet: av.Packet) -> Fraction:
    """Start time of a packet in seconds (pts, else dts)."""
    stamp = packet.pts if packet.pts is not None else packet.dts
    return stamp * packet.time_base
