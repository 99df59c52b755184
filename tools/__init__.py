"""The functions the model may call, declared as data (args model, description, writes flag)."""
