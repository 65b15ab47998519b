"""The page of `dt serve` as a Hugging Face Space (sdk: gradio, app_file: app.py), unchanged:
every model in the models/ beside this file (or in $DT_MODELS_DIR). Locally: `python app.py`,
or `dt serve`. How to deploy it: docs/serve.md."""

import os
from pathlib import Path

from decision_transformer.serve.app import build_app

MODELS = Path(os.environ.get("DT_MODELS_DIR") or Path(__file__).resolve().parent / "models")
demo = build_app([MODELS])

if __name__ == "__main__":
    demo.launch(show_error=True)          # a Space sets GRADIO_SERVER_NAME=0.0.0.0; locally 127.0.0.1
