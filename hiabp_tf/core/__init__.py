"""The model of the paper: Langevin dynamics (`langevin`), the ladder generator and encoder
(`models`, eq. 6-7) and the pieces of Algorithm 1 (`algorithm`: initializing, improving, learning);
`hardware` says what the CPU can do (bfloat16 for `--precision=auto`, the machine line of results).
Imports only TensorFlow, Keras and TensorFlow Probability, never another part of the package."""
