"""The Animatica web service: accounts, credits, payments and animation jobs over HTTP.

The app is built by ``animatica.service.app.create_app``. This package imports nothing itself, so
the upload-check processes can load ``animatica.service.uploads`` without the web stack.
"""
