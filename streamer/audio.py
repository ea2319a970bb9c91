"""Audio constants of the Whisper model and conversions between samples and seconds.

Inside the pipeline time is always an absolute sample index (int) at SAMPLE_RATE; seconds appear
only at the edges (UI, sinks, CLI).
"""

SAMPLE_RATE = 16_000  # Hz, the only rate past the capture/file edge
N_FFT = 400  # 25 ms analysis window
HOP_LENGTH = 160  # 10 ms between mel frames
N_MELS = 80
CHUNK_LENGTH_S = 30  # the encoder always sees a 30 s window
N_SAMPLES = CHUNK_LENGTH_S * SAMPLE_RATE  # 480_000 samples in one window
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames in one window
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 mel frames per second
N_SAMPLES_PER_TOKEN = HOP_LENGTH * 2  # the encoder's conv2 has stride 2: 20 ms per position
TOKENS_PER_SECOND = SAMPLE_RATE // N_SAMPLES_PER_TOKEN  # 50 audio positions per second
TIME_PRECISION_S = 1 / TOKENS_PER_SECOND  # 0.02 s per timestamp token


def samples_to_seconds(n_samples: int) -> float:
    """Absolute sample index -> seconds."""
    return n_samples / SAMPLE_RATE


def seconds_to_samples(seconds: float) -> int:
    """Seconds -> absolute sample index (rounded to the nearest sample)."""
    return int(round(seconds * SAMPLE_RATE))


def ms_to_samples(ms: float) -> int:
    """Milliseconds -> number of samples."""
    return int(round(ms * SAMPLE_RATE / 1000))
