"""Evaluation of the papers' protocols.

* :mod:`.metrics`: pure metric functions (L1, PSNR, SSIM, MS-SSIM, AKD, MKR, AED, CSIM,
  APD, jitter) on frames, keypoints, embeddings and head angles.
* :mod:`.lpips`, :mod:`.fid`: the networks that need user-supplied weights (LPIPS with a
  torchvision AlexNet/VGG-16 trunk and the lpips package's linear heads; pytorch-fid's
  Inception), loaded from the files in their usual layouts.
* What the metrics compare, measured per frame: :mod:`.extractor`
  (:class:`~.extractor.FeatureExtractor`: face mesh, head pose, dlib, body pose) with
  :mod:`.dlib_face` (dlib's detector, 68 landmarks, descriptors) and :mod:`.body_pose`
  (MediaPipe Pose); :mod:`.features` (:class:`~.features.VideoFeatures` and its file
  format) and :mod:`.cache` (:class:`~.cache.FeatureCache`, keyed by file digest).

The ``reanimate evaluate`` command that runs models and detectors over test videos and
writes the report tables is not built yet (evaluation issue).
"""
