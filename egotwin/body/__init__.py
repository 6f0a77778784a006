"""The body: skeleton table, rotations, forward kinematics, body models and the head camera."""
