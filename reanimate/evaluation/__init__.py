"""Evaluation of the papers' protocols.

* :mod:`.metrics`: pure metric functions (L1, PSNR, SSIM, MS-SSIM, AKD, MKR, AED, CSIM,
  APD, jitter) on frames, keypoints, embeddings and head angles.
* :mod:`.lpips`, :mod:`.fid`: the networks that need user-supplied weights (LPIPS with a
  torchvision AlexNet/VGG-16 trunk and the lpips package's linear heads; pytorch-fid's
  Inception), loaded from the files in their usual layouts.

The ``reanimate evaluate`` command that runs models and detectors over test videos and
writes the report tables is not built yet (evaluation issue).
"""
