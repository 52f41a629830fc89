"""ComfyUI graphs: structural and catalogue validation, node policy, the published catalogues."""
