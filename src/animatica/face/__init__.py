"""Face toolkit: detection, landmarks, identity embeddings, and what is built on them.

The models come from pretrained files that installed packages ship (dlib's detectors, landmark
predictors and face-recognition ResNet from ``face-recognition-models``); nothing is downloaded.
Everything else in this package (tracking, motion retargeting, warping, cropping, best-frame
search, metrics) talks to the models only through the ``FaceAnalyzer`` interface in
``analyzer.py``, so another backend (for example mediapipe's face mesh) can be slotted in.
"""
