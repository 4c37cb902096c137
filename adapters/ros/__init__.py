"""rclpy nodes: the driftgate controller (`driftgate_controller`) and a simulated robot
(`driftgate_sim_robot`). Importing this package does not import rclpy; the node modules do."""
