"""The edge between one device's clock and the appliance's tick.

INTERFACE STUB — to be implemented (keep these signatures).

A ``DeviceAudioPort`` belongs to one line's audio device (a serial audio tty, an ALSA PCM).
The device side is called from the transport's own thread, paced by the device clock:
for every period read from the device, the transport calls ``device_frame_in(samples)`` and
then writes ``device_frame_out()`` back to the device (read-paced writes, as chan_dongle does).
Samples there are int16 at ``device_rate``; the port resamples (soxr, streaming) to and from
the internal ``AudioFormat`` rate, so the mixer never sees another rate.

The tick side (the audio engine's thread) calls ``read_frame()`` once per tick for what the
device heard and ``write_frame(frame)`` once per tick for what the device should play. Between
the two sides sit two drift buffers (``appliance.audio.buffers.DriftBuffer``) whose fill is held
near ``target_ms`` by slipping single samples, so two clocks that differ by a few hundred ppm
never grow or drain a buffer; an underrun yields silence (faded), an overrun drops the oldest
audio; both are counted in ``stats()``.

When the port is the engine's master, ``device_frame_in`` also signals the engine
(``set_tick_listener``) so the tick is driven by the device's clock.
"""
