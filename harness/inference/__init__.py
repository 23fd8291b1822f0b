"""The models' inputs and sessions: behaviour features, the model manifest, ONNX sessions."""
