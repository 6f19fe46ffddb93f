"""Speech recognition, as the `tfformer` command line sees it (see
`applications.common.registry`)."""

from applications.common.registry import Application, ClientCommand, deferred
from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig


def _transcribe_arguments(parser):
    parser.add_argument("model", nargs="?", default="saved_models/speech_recognition",
                        help="export directory (its latest version is used; default "
                        "%(default)s)")
    parser.add_argument("audio", nargs="*", default=[],
                        help="WAV files (any rate, mono or stereo)")
    parser.add_argument(
        "--stream", metavar="FILE|-", help="send a WAV file, or raw 16-bit mono PCM at the "
        "model's rate from standard input (-), through the export's stream_step chunk by chunk, "
        "printing each word when it appears: `arecord -f S16_LE -r 8000 -c 1 | tfformer "
        "transcribe --stream - MODEL` captions live")
    parser.add_argument("--chunk-ms", type=float, default=320.0,
                        help="audio per stream_step call, in ms (default %(default)s)")


def _transcript(outputs):
    return outputs["transcript"].numpy()[0].decode("utf-8")


def _transcribe(args):
    from applications.common.export_client import load_export, serve_files, unreadable

    if args.stream is None:
        if not args.audio:
            raise ValueError("transcribe needs WAV files, or --stream FILE|- for live audio")
        return serve_files(args.model, args.audio, "audio_bytes", _transcript)
    if args.audio:
        rest = " ".join([args.model, *args.audio])
        raise ValueError(f"--stream streams one source ({args.stream}), and the only other "
                         f"argument is the export directory, but {rest} were given: stream "
                         f"each file with its own command")
    if args.chunk_ms <= 0:
        raise ValueError(f"--chunk-ms must be positive, got {args.chunk_ms}")
    import tensorflow as tf

    from applications.speech_recognition.live_client import print_stream
    from tfformer import wav

    problem = unreadable(args.stream) if args.stream != "-" else None
    if problem:  # before the export loads (seconds)
        raise ValueError(f"{args.stream}: {problem}")
    served = load_export(args.model, "audio_bytes")
    try:
        print_stream(served, args.stream, args.chunk_ms)
    except tf.errors.InvalidArgumentError as error:  # raised eagerly (decoding) or traced
        raise ValueError(f"{args.stream}: {wav.error_reason(error)}") from None
    except IsADirectoryError as error:
        raise ValueError(f"{args.stream}: {error.strerror}") from None
    return 0


APPLICATION = Application.in_package(
    __package__,
    name="speech_recognition",
    summary="truncated-attention speech recognition (CTC), streaming in the export",
    config_class=SpeechRecognitionConfig,
    presets=PRESETS,
    serving_input="audio_bytes",
    client=ClientCommand("transcribe",
                         "transcribe WAV files with an export, or stream live audio",
                         _transcribe_arguments, _transcribe),
    evaluate_output="transcripts, one per line",
    prepare=deferred(f"{__package__}.prepare", "prepare"),
)
