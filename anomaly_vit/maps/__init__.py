"""Where the model looks: map kinds, the forward passes they read, their scores."""
