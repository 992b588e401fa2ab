"""Training runs: the app side of labeler.ml (pages, API, CLI, background worker, import prescreen).

torch is imported only inside the worker process (through labeler.ml's training modules); the web
app reads run rows and model folders and predicts with onnxruntime.
"""
