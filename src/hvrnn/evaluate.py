"""``hvrnn.evaluate``: the names of :mod:`hvrnn.evaluation` under the module path they had before
evaluation became a package (``from hvrnn.evaluate import evaluate_checkpoint`` keeps working)."""

from hvrnn.evaluation.from_checkpoint import PredictionsWriter, evaluate_checkpoint
from hvrnn.evaluation.predictions import evaluate_predictions, evaluate_predictions_file
from hvrnn.evaluation.protocols import (
    FVD_FRAMES,
    PROTOCOLS,
    Protocol,
    format_protocols,
    get_protocol,
    protocol_data_config,
)
from hvrnn.evaluation.report import format_summary
from hvrnn.evaluation.request import FROM_CACHE
from hvrnn.evaluation.scorer import SKIPPED, Scorer
from hvrnn.io.files import sha256_file

__all__ = ["FROM_CACHE", "FVD_FRAMES", "PROTOCOLS", "SKIPPED", "PredictionsWriter", "Protocol",
           "Scorer", "evaluate_checkpoint", "evaluate_predictions", "evaluate_predictions_file",
           "format_protocols", "format_summary", "get_protocol", "protocol_data_config",
           "sha256_file"]
