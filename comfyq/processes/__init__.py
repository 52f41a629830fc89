"""Process trees and restart policy, shared by the GPU worker's ComfyUI supervisor and ``comfyq up``."""
