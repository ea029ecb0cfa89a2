"""ENAS (Pham et al., 2018) on its own spaces: the micro and macro search
children and loop (`search`), the recurrent search (`lm_search`), the final
networks. The controller and its REINFORCE updates are
`nasjax.strategies.controller` and `nasjax.strategies.reinforce`."""
