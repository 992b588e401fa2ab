"""Capture: clinicians photograph a case on a phone or tablet; the project's quality model checks
each photo in the browser (onnxruntime-web) before anything is uploaded."""
